"""Running scaling studies: config, training loop, store, executors."""
