"""cli: the `thrifty <room> <verb>` command line; one module per room, heavy imports only inside handlers."""
