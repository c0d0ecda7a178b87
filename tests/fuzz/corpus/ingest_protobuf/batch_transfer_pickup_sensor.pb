

t1hhzstore-2
A

p1webŠ

o
A
!
s1f’
ftemp_mcààÿÿÿÿÿÿÿ