"""Study reports from the tracking store: the per-variant table with intervals (`catdog
compare`) and the whole review page (`catdog report`)."""
