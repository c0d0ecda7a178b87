

r1dockb

A

BDN
"
a1hhj

Aýÿÿÿÿÿÿÿÿshrink

c1hhr
A