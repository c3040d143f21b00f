"""The typed schema, the value checks run before any data is read, and the one entry-point shape."""
