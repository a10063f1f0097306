#include "gpu/exec.cuh"
#include "portable/copying.inl"
