"""Collecting rollouts and learning from them: the collector and its one step loop, the actor
seam a backend implements, the advantage estimators, minibatch plans and the update driver."""
