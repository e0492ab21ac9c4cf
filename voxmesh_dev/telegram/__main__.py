"""``python -m voxmesh_dev.telegram``: the Bot API emulator on its own, until SIGTERM or SIGINT."""

from voxmesh_dev.telegram.emulator import main

if __name__ == "__main__":
    main()
