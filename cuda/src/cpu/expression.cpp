#include "cpu/exec.hpp"
#include "portable/expression.inl"
