"""Development tools for voxmesh: what runs the mesh on one machine, never in production.

* :mod:`voxmesh_dev.telegram`: a Telegram Bot API emulator (``BotApiEmulator``).
* :mod:`voxmesh_dev.zipkin`: a Zipkin v2 collector that checks every span (``ZipkinCollector``).
* :mod:`voxmesh_dev.embedded`: embedded PostgreSQL and Redis for a machine without them.
* :mod:`voxmesh_dev.mesh`: the whole mesh as local processes (``voxmesh up``, the tests).

The wheel carries this package (``voxmesh up`` needs it, with the ``embedded`` extra); the
service image does not (the Dockerfile copies only the runtime and the services), and an
import-linter contract keeps the runtime and the services from importing it. Nothing is
imported here, so ``import voxmesh_dev.embedded`` does not load the emulator or the
collector's validators.
"""
