# embed.cmake — turns the plugin project template (sdk/template/*.in) into a
# C file of byte arrays, so `switchboard plugins new` needs no files at run
# time. Run as: cmake -DDIR=<template dir> -DOUT=<file.c> -P embed.cmake
file(GLOB files RELATIVE ${DIR} ${DIR}/*.in)
list(SORT files)
set(out "/* scaffold_templates.c — generated from the sdk/template files by sdk/template/embed.cmake; do not edit. */\n#include \"scaffold.h\"\n\n")
set(table "")
set(i 0)
foreach(f ${files})
  file(READ ${DIR}/${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND out "static const char scaffold__t${i}[] = {${bytes}0};\n")
  string(REGEX REPLACE "\\.in$" "" name ${f})
  string(APPEND table "    {\"${name}\", scaffold__t${i}, sizeof(scaffold__t${i}) - 1},\n")
  math(EXPR i "${i}+1")
endforeach()
string(APPEND out "\nconst scaffold_template scaffold_templates[] = {\n${table}    {NULL, NULL, 0},\n};\n")
file(WRITE ${OUT} "${out}")
