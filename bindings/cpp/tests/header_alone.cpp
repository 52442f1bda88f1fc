// bindings/cpp/tests/header_alone.cpp: openbits.hpp compiles on its own (it includes everything it
// needs, openbits.h included). test.sh compiles this TU with -c and strict warnings.
#include "openbits.hpp"
