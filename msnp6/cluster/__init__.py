"""Nodes of a cluster: the Redis connection they share and the registry of live nodes."""
