"""The bottom floor of the local runtime: the log file every local piece writes to and the
background HTTP server each one serves on. It imports nothing else of `local` but `paths`, so
the emulators (`local.emulate`) and the stack that drives them (`local.devstack`) share it."""
