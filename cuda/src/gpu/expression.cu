#include "gpu/exec.cuh"
#include "portable/expression.inl"
