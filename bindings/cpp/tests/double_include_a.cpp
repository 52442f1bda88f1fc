// bindings/cpp/tests/double_include_a.cpp (with double_include_b.cpp): openbits.hpp included twice
// in one TU (the include guard), and in two TUs linked into one program (every function defined in
// the header is inline: a non-inline one would be defined twice and fail the link).
#include "openbits.hpp"
#include "openbits.hpp"
#include "openbits.h"

#include <cstdio>
#include <string>

std::string from_b(); // double_include_b.cpp

int main() {
    // Take the address of functions and members, so both TUs emit their definitions.
    auto format = &openbits::format_hresult;
    auto resume = &openbits::Job::resume;
    auto ids = &openbits::Manager::job_ids;
    (void)resume;
    (void)ids;
    const std::string a = format(BITS_E_NOT_FOUND) + " " + openbits::Guid().to_string();
    const std::string b = from_b();
    if (a != b) {
        std::fprintf(stderr, "double_include: %s != %s\n", a.c_str(), b.c_str());
        return 1;
    }
    std::printf("double_include: %s, library %s\n", a.c_str(), std::string(openbits::version()).c_str());
    return 0;
}
