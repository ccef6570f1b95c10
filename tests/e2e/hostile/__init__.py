"""Hostile input for the hospital topics: a corpus of records and what each should get."""
