#include "cpu/exec.hpp"
#include "portable/tokenize.inl"
