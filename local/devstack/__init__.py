"""The local stack: emulators, feedback store and site on one origin; `pressroom logs` over its
log file (`local.plumbing.logfile`), the start-up summary, the local reader key."""
