# AOT ID: ['1_inference']
from ctypes import c_void_p, c_long, c_int
import torch
import math
import random
import os
import tempfile
from math import inf, nan
from cmath import nanj
from torch._inductor.hooks import run_intermediate_hooks
from torch._inductor.utils import maybe_profile
from torch._inductor.codegen.memory_planning import _align as align
from torch import device, empty_strided
from torch._inductor.async_compile import AsyncCompile
from torch._inductor.select_algorithm import extern_kernels

aten = torch.ops.aten
inductor_ops = torch.ops.inductor
_quantized = torch.ops._quantized
assert_size_stride = torch._C._dynamo.guards.assert_size_stride
assert_alignment = torch._C._dynamo.guards.assert_alignment
empty_strided_cpu = torch._C._dynamo.guards._empty_strided_cpu
empty_strided_cpu_pinned = torch._C._dynamo.guards._empty_strided_cpu_pinned
empty_strided_cuda = torch._C._dynamo.guards._empty_strided_cuda
empty_strided_xpu = torch._C._dynamo.guards._empty_strided_xpu
empty_strided_mtia = torch._C._dynamo.guards._empty_strided_mtia
reinterpret_tensor = torch._C._dynamo.guards._reinterpret_tensor
alloc_from_pool = torch.ops.inductor._alloc_from_pool
async_compile = AsyncCompile()
empty_strided_p2p = torch._C._distributed_c10d._SymmetricMemory.empty_strided_p2p


cpp_fused_constant_pad_nd_ge_gt_index_index_add_mul_new_zeros_scalar_tensor_sub_sum_transpose_unsqueeze_view_where_0 = async_compile.cpp_pybinding(['float*', 'const int64_t*', 'const float*', 'const float*', 'const float*', 'const float*', 'float*', 'float*'], r'''
#include <torch/csrc/inductor/cpp_prefix.h>
extern "C"  void  kernel(float* in_out_ptr0,
                       const int64_t* in_ptr0,
                       const float* in_ptr1,
                       const float* in_ptr2,
                       const float* in_ptr3,
                       const float* in_ptr4,
                       float* out_ptr1,
                       float* out_ptr2)
{
    std::atomic<int> inductor_cpu_integer_div_error{0};
    inductor_cpu_integer_div_error_flag = &inductor_cpu_integer_div_error;
    auto out_ptr0 = in_out_ptr0;
    {
        #pragma GCC ivdep
        for(int64_t x0=static_cast<int64_t>(0L); x0<static_cast<int64_t>(1000L); x0+=static_cast<int64_t>(1L))
        {
            #pragma GCC ivdep
            for(int64_t x1=static_cast<int64_t>(0L); x1<static_cast<int64_t>(16L); x1+=static_cast<int64_t>(1L))
            {
                {
                    float tmp_acc0 = 0;
                    at::vec::Vectorized<float> tmp_acc0_vec = at::vec::Vectorized<float>(0);
                    for(int64_t x2=static_cast<int64_t>(0L); x2<static_cast<int64_t>(64L); x2+=static_cast<int64_t>(16L))
                    {
                        {
                            if(C10_LIKELY(x2 >= static_cast<int64_t>(0) && x2 < static_cast<int64_t>(64L)))
                            {
                                auto tmp0 = in_ptr0[static_cast<int64_t>(x1 + 16L*x0)];
                                auto tmp17 = at::vec::Vectorized<float>::loadu(in_ptr2 + static_cast<int64_t>(x2 + 64L*x0), static_cast<int64_t>(16));
                                auto tmp21 = at::vec::Vectorized<float>::loadu(in_ptr3 + static_cast<int64_t>(x2 + 64L*x0), static_cast<int64_t>(16));
                                auto tmp1 = static_cast<int64_t>(0);
                                auto tmp2 = tmp0 >= tmp1;
                                auto tmp3 = static_cast<int64_t>(1000);
                                auto tmp4 = tmp2 ? tmp0 : tmp3;
                                auto tmp5 = 1001L;
                                auto tmp6 = c10::convert<int64_t>(tmp5);
                                auto tmp7 = int64_t(tmp4 + tmp6);
                                auto tmp8 = tmp4 < 0;
                                auto tmp9 = tmp8 ? tmp7 : tmp4;
                                auto tmp10 = tmp9;
                                auto tmp11 = c10::convert<int64_t>(tmp10);
                                TORCH_CHECK((0 <= tmp11) & (tmp11 < 1001L), "index out of bounds: 0 <= tmp11 < 1001L");
                                auto tmp13 = tmp11 < tmp3;
                                auto tmp14 = [&]
                                {
                                    auto tmp15 = at::vec::VecMask<float,1>::from(tmp13).template loadu<float,1>(in_ptr1 + static_cast<int64_t>(x2 + 64L*tmp9));
                                    return tmp15;
                                }
                                ;
                                auto tmp16 = tmp13 ? tmp14() : at::vec::Vectorized<float>(static_cast<float>(0.0));
                                auto tmp18 = static_cast<float>(0.0);
                                auto tmp19 = at::vec::Vectorized<float>(tmp18);
                                auto tmp20 = at::vec::VecMask<float,1>(tmp17 > tmp19);
                                auto tmp22 = decltype(tmp21)::blendv(tmp19, tmp21, tmp20.template cast<float,1>());
                                auto tmp23 = tmp16 * tmp22;
                                tmp_acc0_vec = tmp_acc0_vec + tmp23;
                            }
                        }
                    }
                    tmp_acc0 = tmp_acc0 + at::vec::vec_reduce_all<float, 1>([](at::vec::Vectorized<float>& x, at::vec::Vectorized<float>& y) { return x + y; }, tmp_acc0_vec);
                    out_ptr0[static_cast<int64_t>(x1 + 16L*x0)] = static_cast<float>(tmp_acc0);
                }
            }
            {
                float tmp_acc0 = 0;
                at::vec::Vectorized<float> tmp_acc0_vec = at::vec::Vectorized<float>(0);
                for(int64_t x1=static_cast<int64_t>(0L); x1<static_cast<int64_t>(16L); x1+=static_cast<int64_t>(16L))
                {
                    {
                        if(C10_LIKELY(x1 >= static_cast<int64_t>(0) && x1 < static_cast<int64_t>(16L)))
                        {
                            auto tmp0 = at::vec::Vectorized<float>::loadu(in_ptr4 + static_cast<int64_t>(x1 + 16L*x0), static_cast<int64_t>(16));
                            auto tmp1 = at::vec::VectorizedN<int64_t,2>::loadu(in_ptr0 + static_cast<int64_t>(x1 + 16L*x0), static_cast<int64_t>(16));
                            auto tmp5 = at::vec::Vectorized<float>::loadu(out_ptr0 + static_cast<int64_t>(x1 + 16L*x0), static_cast<int64_t>(16));
                            auto tmp2 = static_cast<int64_t>(0);
                            auto tmp3 = at::vec::VectorizedN<int64_t,2>(tmp2);
                            auto tmp4 = at::vec::VecMask<int64_t,2>(tmp1 >= tmp3);
                            auto tmp6 = static_cast<float>(0.0);
                            auto tmp7 = at::vec::Vectorized<float>(tmp6);
                            auto tmp8 = decltype(tmp5)::blendv(tmp7, tmp5, tmp4.template cast<float,1>());
                            auto tmp9 = tmp0 * tmp8;
                            tmp_acc0_vec = tmp_acc0_vec + tmp9;
                        }
                    }
                }
                tmp_acc0 = tmp_acc0 + at::vec::vec_reduce_all<float, 1>([](at::vec::Vectorized<float>& x, at::vec::Vectorized<float>& y) { return x + y; }, tmp_acc0_vec);
                out_ptr1[static_cast<int64_t>(x0)] = static_cast<float>(tmp_acc0);
            }
            for(int64_t x1=static_cast<int64_t>(0L); x1<static_cast<int64_t>(16L); x1+=static_cast<int64_t>(16L))
            {
                {
                    if(C10_LIKELY(x1 >= static_cast<int64_t>(0) && x1 < static_cast<int64_t>(16L)))
                    {
                        auto tmp0 = at::vec::Vectorized<float>::loadu(in_ptr4 + static_cast<int64_t>(x1 + 16L*x0), static_cast<int64_t>(16));
                        auto tmp1 = at::vec::VectorizedN<int64_t,2>::loadu(in_ptr0 + static_cast<int64_t>(x1 + 16L*x0), static_cast<int64_t>(16));
                        auto tmp5 = at::vec::Vectorized<float>::loadu(out_ptr0 + static_cast<int64_t>(x1 + 16L*x0), static_cast<int64_t>(16));
                        auto tmp9 = out_ptr1[static_cast<int64_t>(x0)];
                        auto tmp2 = static_cast<int64_t>(0);
                        auto tmp3 = at::vec::VectorizedN<int64_t,2>(tmp2);
                        auto tmp4 = at::vec::VecMask<int64_t,2>(tmp1 >= tmp3);
                        auto tmp6 = static_cast<float>(0.0);
                        auto tmp7 = at::vec::Vectorized<float>(tmp6);
                        auto tmp8 = decltype(tmp5)::blendv(tmp7, tmp5, tmp4.template cast<float,1>());
                        auto tmp10 = at::vec::Vectorized<float>(tmp9);
                        auto tmp11 = tmp8 - tmp10;
                        auto tmp12 = tmp0 * tmp11;
                        tmp12.store(in_out_ptr0 + static_cast<int64_t>(x1 + 16L*x0));
                    }
                }
            }
        }
    }
    {
        for(int64_t x0=static_cast<int64_t>(0L); x0<static_cast<int64_t>(64064L); x0+=static_cast<int64_t>(16L))
        {
            {
                if(C10_LIKELY(x0 >= static_cast<int64_t>(0) && x0 < static_cast<int64_t>(64064L)))
                {
                    auto tmp0 = static_cast<float>(0.0);
                    auto tmp1 = at::vec::Vectorized<float>(tmp0);
                    tmp1.store(out_ptr2 + static_cast<int64_t>(x0));
                }
            }
        }
    }
    {
        #pragma GCC ivdep
        for(int64_t x0=static_cast<int64_t>(0L); x0<static_cast<int64_t>(1000L); x0+=static_cast<int64_t>(1L))
        {
            #pragma GCC ivdep
            for(int64_t x1=static_cast<int64_t>(0L); x1<static_cast<int64_t>(16L); x1+=static_cast<int64_t>(1L))
            {
                for(int64_t x2=static_cast<int64_t>(0L); x2<static_cast<int64_t>(64L); x2+=static_cast<int64_t>(16L))
                {
                    {
                        if(C10_LIKELY(x2 >= static_cast<int64_t>(0) && x2 < static_cast<int64_t>(64L)))
                        {
                            auto tmp0 = in_ptr0[static_cast<int64_t>(x1 + 16L*x0)];
                            auto tmp13 = in_ptr4[static_cast<int64_t>(x1 + 16L*x0)];
                            auto tmp14 = at::vec::Vectorized<float>::loadu(in_ptr2 + static_cast<int64_t>(x2 + 64L*x0), static_cast<int64_t>(16));
                            auto tmp18 = at::vec::Vectorized<float>::loadu(in_ptr3 + static_cast<int64_t>(x2 + 64L*x0), static_cast<int64_t>(16));
                            auto tmp1 = static_cast<int64_t>(0);
                            auto tmp2 = tmp0 >= tmp1;
                            auto tmp3 = static_cast<int64_t>(1000);
                            auto tmp4 = tmp2 ? tmp0 : tmp3;
                            auto tmp5 = 1001L;
                            auto tmp6 = c10::convert<int64_t>(tmp5);
                            auto tmp7 = int64_t(tmp4 + tmp6);
                            auto tmp8 = tmp4 < 0;
                            auto tmp9 = tmp8 ? tmp7 : tmp4;
                            auto tmp10 = tmp9;
                            auto tmp11 = c10::convert<int64_t>(tmp10);
                            TORCH_CHECK((0 <= tmp11) & (tmp11 < 1001L), "index out of bounds: 0 <= tmp11 < 1001L");
                            auto tmp15 = static_cast<float>(0.0);
                            auto tmp16 = at::vec::Vectorized<float>(tmp15);
                            auto tmp17 = at::vec::VecMask<float,1>(tmp14 > tmp16);
                            auto tmp19 = decltype(tmp18)::blendv(tmp16, tmp18, tmp17.template cast<float,1>());
                            auto tmp20 = at::vec::Vectorized<float>(tmp13);
                            auto tmp21 = tmp20 * tmp19;
                            (tmp21 + at::vec::Vectorized<float>::loadu(out_ptr2 + static_cast<int64_t>(x2 + 64L*tmp9))).store(out_ptr2 + static_cast<int64_t>(x2 + 64L*tmp9));
                        }
                    }
                }
            }
        }
    }
    inductor_cpu_integer_div_error_flag = nullptr;
    inductor_cpu_throw_if_integer_div_error(inductor_cpu_integer_div_error);
}
''')


async_compile.wait(globals())
del async_compile

class Runner:
    def __init__(self, partitions):
        self.partitions = partitions

    def recursively_apply_fns(self, fns):
        new_callables = []
        for fn, c in zip(fns, self.partitions):
            new_callables.append(fn(c))
        self.partitions = new_callables

    def call(self, args):
        arg0_1, arg1_1, arg2_1, arg3_1, arg4_1 = args
        args.clear()
        assert_size_stride(arg3_1, (1000, 16), (16, 1), 'input')
        assert_size_stride(arg2_1, (1, 1000, 1, 64), (64000, 64, 64, 1), 'input')
        assert_size_stride(arg0_1, (1, 1000, 1, 64), (64000, 64, 64, 1), 'input')
        assert_size_stride(arg1_1, (1, 1000, 1, 64), (64000, 64, 64, 1), 'input')
        assert_size_stride(arg4_1, (1, 1000, 1, 16), (16000, 16, 16, 1), 'input')
        buf0 = empty_strided_cpu((1, 1000, 16, 1), (16000, 16, 1, 16000), torch.float32)
        buf1 = empty_strided_cpu((1, 1000, 1, 1), (1000, 1, 1000, 1000), torch.float32)
        buf2 = reinterpret_tensor(buf0, (1, 1000, 1, 16), (16000, 16, 16, 1), 0); del buf0  # reuse
        buf3 = empty_strided_cpu((1, 1001, 1, 64), (64064, 64, 64, 1), torch.float32)
        cpp_fused_constant_pad_nd_ge_gt_index_index_add_mul_new_zeros_scalar_tensor_sub_sum_transpose_unsqueeze_view_where_0(buf2, arg3_1, arg2_1, arg0_1, arg1_1, arg4_1, buf1, buf3)
        del arg0_1
        del arg1_1
        del arg2_1
        del arg3_1
        del arg4_1
        return (buf2, reinterpret_tensor(buf3, (1, 1000, 1, 64), (64064, 64, 64, 1), 0), )

runner = Runner(partitions=[])
call = runner.call
recursively_apply_fns = runner.recursively_apply_fns


def get_args():
    from torch._dynamo.testing import rand_strided
    arg0_1 = rand_strided((1, 1000, 1, 64), (64000, 64, 64, 1), device='cpu', dtype=torch.float32)
    arg1_1 = rand_strided((1, 1000, 1, 64), (64000, 64, 64, 1), device='cpu', dtype=torch.float32)
    arg2_1 = rand_strided((1, 1000, 1, 64), (64000, 64, 64, 1), device='cpu', dtype=torch.float32)
    arg3_1 = rand_strided((1000, 16), (16, 1), device='cpu', dtype=torch.int64)
    arg4_1 = rand_strided((1, 1000, 1, 16), (16000, 16, 16, 1), device='cpu', dtype=torch.float32)
    return [arg0_1, arg1_1, arg2_1, arg3_1, arg4_1]


def benchmark_compiled_module(args, times=10, repeat=10):
    from torch._inductor.utils import print_performance
    fn = lambda: call(list(args))
    return print_performance(fn, times=times, repeat=repeat, device='cpu')


if __name__ == "__main__":
    from torch._inductor.wrapper_benchmark import compiled_module_main
    args = get_args()
    compiled_module_main('None', lambda times, repeat: benchmark_compiled_module(args, times=times, repeat=repeat))
