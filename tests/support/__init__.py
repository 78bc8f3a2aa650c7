"""Test helpers shared by every suite: real redis-server processes, free ports."""
