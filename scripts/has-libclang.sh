#!/usr/bin/env bash
# Exit 0 when the `ldconfig -p` listing on stdin has the library bindgen loads
# (libclang.so.N or libclang-N.so.N), 1 otherwise. libclang-cpp.so.N, which some images
# ship alone, is a different library and does not count.
grep -Eq '(^|[[:space:]/])libclang(-[0-9.]+)?\.so'
