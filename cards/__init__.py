"""Templates of the dataset card and licence file (data only), shipped as ``hexainst.cards``."""
