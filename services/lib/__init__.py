"""Libraries: imported by the deployables and tools, never run on their own."""
