"""Networks, optimizers and what is measured on them (paper Sec. 2.1, 3, 5.2): BasicNet and VGG
with BatchNorm, Adam/AMSGrad/Adagrad/SGD with coupled L2 or decoupled weight decay, the explicit
sparsifiers, and the feature sparsity measures. Imports only `sparsity_lib.validation`."""
