"""Training the lifter (needs torch: the optional ``train`` extra). See ``python -m wildpose.lift.train``."""
