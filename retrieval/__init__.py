"""Per-domain knowledge: loaders, chunking, FAISS + BM25 indexes, ACL-filtered search.

Framework-free: takes and returns typed values; storage and jobs live in backend/.
"""
