"""The frozen backbone's features computed once: the store on disk and the callback that uses it."""
