"""Records in the run store: collection (answers, verifier scores, judge grades), predictions over judged records,
and the joins and prices that fitting and replay share."""
