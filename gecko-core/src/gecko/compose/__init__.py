"""Layer 4: composition of agents into workflows and teams."""
