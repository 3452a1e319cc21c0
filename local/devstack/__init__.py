"""The local stack: emulators, feedback store and site on one origin; its log file and views."""
