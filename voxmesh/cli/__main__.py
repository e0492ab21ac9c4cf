"""``python -m voxmesh.cli``: the ``voxmesh`` command."""

from voxmesh.cli import main

if __name__ == "__main__":
    main()
