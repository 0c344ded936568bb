"""Every prompt and tool description as a versioned, owned, approved file."""
