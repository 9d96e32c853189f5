"""Plans: the ordered writes a dry run skipped, built from the journal.

- :mod:`drygate.plan.build`: plan of a run (dict), from a store's journal.
"""
