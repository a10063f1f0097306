#include "gpu/exec.cuh"
#include "portable/tokenize.inl"
