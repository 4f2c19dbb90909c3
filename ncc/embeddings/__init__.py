"""Node features: inst2vec embeddings (statement normalisation, vocabulary, context pairs, skip-gram training
and evaluation) and feature encoders for the models (a node-text vocabulary, inst2vec statement ids)."""

from ncc.embeddings.corpus import ModuleContext, PairSource, PairStore, iter_module_contexts, module_context
from ncc.embeddings.encoders import StatementIds, module_embeddings
from ncc.embeddings.evaluate import (AnalogyReport, evaluate_analogies, load_analogies, nearest_neighbours,
                                     opcode_family, opcode_separation, plot_tsne)
from ncc.embeddings.node_vocabulary import NodeVocabulary
from ncc.embeddings.skipgram import Embeddings, SkipGram
from ncc.embeddings.train import EmbedResult, embed
from ncc.embeddings.vocabulary import Vocabulary
from ncc.embeddings.xfg import XFG, build_xfg, context_pairs

__all__ = ["XFG", "build_xfg", "context_pairs", "ModuleContext", "module_context", "iter_module_contexts",
           "PairStore", "PairSource", "Vocabulary", "SkipGram", "Embeddings", "embed", "EmbedResult",
           "evaluate_analogies", "load_analogies", "AnalogyReport", "nearest_neighbours", "plot_tsne",
           "opcode_family", "opcode_separation", "NodeVocabulary", "StatementIds", "module_embeddings"]
