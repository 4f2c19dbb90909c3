"""inst2vec embeddings: statement normalisation, vocabulary, context pairs, skip-gram training and evaluation."""
