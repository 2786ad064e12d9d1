"""Mining attributes from real conversations: read, scrub, find revealing sentences, merge, assemble."""
