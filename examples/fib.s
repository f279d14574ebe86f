# fib.s: the 40th Fibonacci number modulo 2^64, with a bounded loop and a
# subprogram call.  llvm-objdump syntax; run it with `xsim run examples/fib.s`.
r1 = 40
call local fib_iter
exit

fib_iter:
r0 = 0
r2 = 1
loop:
if r1 == 0 goto done
r3 = r0
r3 += r2
r0 = r2
r2 = r3
r1 += -1
goto loop
done:
exit
