"""Every generation and vote: the feedback contract and the store."""
