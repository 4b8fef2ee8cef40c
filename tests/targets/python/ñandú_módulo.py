# -*- coding: utf-8 -*-
# A module with a non-ASCII file name and function name, loaded by
# stacks_target.py (on 2.7, which has no non-ASCII identifiers, the loader
# renames the function to ASCII before compiling).


def función_ñ():
    arrive()
    time.sleep(1000000)  # BLOCKS


def entry():
    función_ñ()
