"""Names of operator kinds: the words measured tables, fitted curves and the cost model share.

Plain strings, kept at the bottom of the layers so that profile data (which names the kinds its
curves and tables cover) and the cost model's operators (:mod:`sim.cost.ops`) use one spelling
without either importing the other.
"""

GEMM, ATTN_PREFILL, ATTN_DECODE, MOE_EXPERT, ELEMENTWISE, ALLREDUCE, ALLTOALL = (
    "gemm", "attn_prefill", "attn_decode", "moe_expert", "elementwise", "allreduce", "alltoall")
OP_KINDS = (GEMM, ATTN_PREFILL, ATTN_DECODE, MOE_EXPERT, ELEMENTWISE, ALLREDUCE, ALLTOALL)
