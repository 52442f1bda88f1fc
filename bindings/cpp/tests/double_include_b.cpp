// bindings/cpp/tests/double_include_b.cpp: the second TU of the double-include test.
#include "openbits.h"
#include "openbits.hpp"
#include "openbits.hpp"

#include <string>

std::string from_b() {
    auto format = &openbits::format_hresult;
    auto resume = &openbits::Job::resume;
    auto ids = &openbits::Manager::job_ids;
    (void)resume;
    (void)ids;
    return format(BITS_E_NOT_FOUND) + " " + openbits::Guid().to_string();
}
