// tests/unit/main.cc: the one doctest main for every unit test in tests/unit/.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
