// The loader against the built-in plugins and against files that are not (valid) plugins.
#include "test_support.hpp"
TEST_CASE("placeholder registry") { CHECK(graft::test::builtin_registry().all().size() >= 0); }
