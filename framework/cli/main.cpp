// graft's command line: dispatches to one file per command.
#include <cstdio>
int main() { std::puts("graft: commands come with the CLI"); return 0; }
