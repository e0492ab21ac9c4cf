"""A Zipkin v2 collector that validates every span against the published API spec.

``ZipkinCollector`` (:mod:`voxmesh_dev.zipkin.collector`) takes Zipkin JSON and OTLP/HTTP
(:mod:`voxmesh_dev.zipkin.otlp`), checks spans against ``zipkin2-api.yaml``
(:mod:`voxmesh_dev.zipkin.schema`) and serves Zipkin's v2 read API. ``python -m
voxmesh_dev.zipkin`` runs one on its own.
"""

from voxmesh_dev.zipkin.collector import ZipkinCollector

__all__ = ["ZipkinCollector"]
