"""An experiment round's state, below everything that serves or decides it: the round a
registered challenger is in (`state`: its canary share or its shadow stage, where it is kept,
the template parameters that serve it, how it ends) and the shadow stage's live gate
(`shadow`). `pressroom up` (`local.devstack`) and the release parameters (`local.ops`) read it;
`pressroom round` (`local.experiment.rounds`) changes it."""
