"""Generated shared messages (from proto/voxmesh/common/v1); do not edit."""
