"""What the book shows: frames, tables, figures, markdown, the paper's published numbers and the
live widgets. Reads records and verdicts; trains nothing."""
