"""The `scalinglab` command line."""
