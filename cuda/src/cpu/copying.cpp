#include "cpu/exec.hpp"
#include "portable/copying.inl"
