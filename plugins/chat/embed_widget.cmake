# embed_widget.cmake — turns widget.js into a C byte array (chat_widget.c).
# Run as: cmake -DIN=<widget.js> -DOUT=<chat_widget.c> -P embed_widget.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* chat_widget.c — generated from plugins/chat/widget.js by embed_widget.cmake; do not edit. */
#include <stddef.h>

const char chat_widget_js[] = {${bytes}0};
const size_t chat_widget_js_len = sizeof(chat_widget_js) - 1;
")
