#ifndef SB_PLUGIN_H
#define SB_PLUGIN_H
#endif
