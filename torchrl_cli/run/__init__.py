"""One run: ``train(cfg)`` top to bottom, its folder, checkpoints, outputs and trained policy."""
