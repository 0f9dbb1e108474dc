// The equivariant modules and checkpoints. Each C++ module is bound with its constructor, forward and a few
// accessors; symm/nn.py wraps it in a torch.nn.Module whose Parameters are the C++ module's own tensors.
#include <chrono>
#include <sstream>

#include "bindings.h"
#include "symm/nn/additive_attention.h"
#include "symm/nn/batchnorm.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/conv.h"
#include "symm/nn/decoder_layer.h"
#include "symm/nn/disentangled.h"
#include "symm/nn/distributions.h"
#include "symm/nn/encoder.h"
#include "symm/nn/normalization.h"
#include "symm/nn/pooling.h"
#include "symm/nn/running_stats.h"
#include "symm/nn/positional.h"

namespace py = pybind11;
using namespace symm::nn;

namespace symm::python {
namespace {

using ModulePtr = std::shared_ptr<torch::nn::Module>;
using OptTensor = std::optional<torch::Tensor>;
template <typename Impl>
using ModuleClass = py::class_<Impl, torch::nn::Module, std::shared_ptr<Impl>>;

torch::Tensor value(const OptTensor& t) { return t ? *t : torch::Tensor(); }

std::shared_ptr<AttentionBackend> attention(const ModulePtr& m, const char* what) {
  auto attn = std::dynamic_pointer_cast<AttentionBackend>(m);
  if (!attn)
    throw std::invalid_argument(std::string(what) +
                                ": expected eMultiheadAttention, RotaryAttention, ALiBiAttention, "
                                "eAdditivePosMultiheadAttention or eAdditiveRelMultiheadAttention, got " +
                                (m ? m->name() : "None"));
  return attn;
}

torch::nn::AnyModule norm(const ModulePtr& m) {
  if (!m) return {};
  if (auto n = std::dynamic_pointer_cast<eRMSNormImpl>(m)) return torch::nn::AnyModule(n);
  if (auto n = std::dynamic_pointer_cast<eLayerNormImpl>(m)) return torch::nn::AnyModule(n);
  throw std::invalid_argument("norm: expected eRMSNorm or eLayerNorm, got " + m->name());
}

template <typename Impl>
std::string describe(const Impl& m) {
  std::ostringstream s;
  m.pretty_print(s);
  return s.str();
}

// Accessors every bound module shares: representations and the one-line description.
template <typename Impl>
ModuleClass<Impl>& common(ModuleClass<Impl>& c) {
  return c.def_property_readonly("in_rep", [](const Impl& m) { return m.in_rep(); })
      .def_property_readonly("out_rep", [](const Impl& m) { return m.out_rep(); })
      .def("__repr__", &describe<Impl>)
      .def("reset_parameters", [](Impl& m) { m.reset_parameters(); });
}

}  // namespace

void bind_nn(py::module_& m) {
  const auto release = py::call_guard<py::gil_scoped_release>();

  // What symm/nn.py needs to mirror any C++ module as a torch.nn.Module tree.
  m.def("named_parameters", [](torch::nn::Module& mod) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : mod.named_parameters(/*recurse=*/false)) out.emplace_back(p.key(), p.value());
    return out;
  });
  m.def("named_buffers", [](torch::nn::Module& mod) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : mod.named_buffers(/*recurse=*/false)) out.emplace_back(p.key(), p.value());
    return out;
  });
  m.def("named_children", [](torch::nn::Module& mod) {
    std::vector<std::pair<std::string, ModulePtr>> out;
    for (const auto& c : mod.named_children()) out.emplace_back(c.key(), c.value());
    return out;
  });
  m.def("set_training", [](torch::nn::Module& mod, bool on) { mod.train(on); });
  m.def("module_name", [](torch::nn::Module& mod) { return mod.name(); });

  m.def("save", [](const ModulePtr& mod, const std::string& path) { symm::save(mod, path); }, py::arg("module"), py::arg("path"), release);
  m.def("load", [](const ModulePtr& mod, const std::string& path) { symm::load(mod, path); }, py::arg("module"), py::arg("path"), release);
  m.def("architecture", [](const ModulePtr& mod) { return symm::architecture(*mod); });

  // For measuring the binding's own overhead: one eval forward (no grad) or one training step
  // (zero_grad, forward, mean square, backward) timed in C++ alone, in milliseconds.
  m.def("_time_layer_ms", [](eTransformerEncoderLayerImpl& l, const torch::Tensor& x, bool train) {
        const auto t0 = std::chrono::steady_clock::now();
        if (train) {
          l.zero_grad();
          l.forward(x).square().mean().backward();
        } else {
          torch::NoGradGuard no_grad;
          l.forward(x);
        }
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      },
      release);

  ModuleClass<eLinearImpl> linear(m, "eLinear");
  common(linear)
      .def(py::init([](const Representation& in, const Representation& out, bool bias, const std::string& init) {
             return std::make_shared<eLinearImpl>(eLinearOptions(in, out).bias(bias).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("out_rep"), py::arg("bias") = true, py::arg("init_scheme") = "xavier_uniform")
      .def("forward", &eLinearImpl::forward, release)
      .def("weight", &eLinearImpl::weight, release)
      .def("bias", &eLinearImpl::bias, release)
      .def("set_dense", [](eLinearImpl& l, const torch::Tensor& w, const OptTensor& b) { l.set_dense(w, value(b)); },
           py::arg("weight"), py::arg("bias") = py::none(), release)
      .def_property_readonly("dim", [](const eLinearImpl& l) { return l.basis().dim(); });

  ModuleClass<eAffineImpl> affine(m, "eAffine");
  common(affine)
      .def(py::init([](const Representation& rep, bool bias) { return std::make_shared<eAffineImpl>(eAffineOptions(rep).bias(bias)); }),
           py::arg("in_rep"), py::arg("bias") = true)
      .def("forward", [](eAffineImpl& a, const torch::Tensor& x) { return a.forward(x); }, release)
      .def("scale_matrix", &eAffineImpl::scale_matrix, release)
      .def("bias_vector", &eAffineImpl::bias_vector, release);

  ModuleClass<eRMSNormImpl> rms(m, "eRMSNorm");
  common(rms)
      .def(py::init([](const Representation& rep, double eps, bool affine) {
             return std::make_shared<eRMSNormImpl>(eRMSNormOptions(rep).eps(eps).equiv_affine(affine));
           }),
           py::arg("in_rep"), py::arg("eps") = 1e-5, py::arg("equiv_affine") = true)
      .def_property_readonly("eps", [](const eRMSNormImpl& n) { return n.options.eps(); })
      .def("forward", &eRMSNormImpl::forward, release)
      .def("normalise", &eRMSNormImpl::normalise, release);

  ModuleClass<eLayerNormImpl> layer_norm(m, "eLayerNorm");
  common(layer_norm)
      .def(py::init([](const Representation& rep, double eps, bool affine, bool bias) {
             return std::make_shared<eLayerNormImpl>(eLayerNormOptions(rep).eps(eps).equiv_affine(affine).bias(bias));
           }),
           py::arg("in_rep"), py::arg("eps") = 1e-5, py::arg("equiv_affine") = true, py::arg("bias") = true)
      .def_property_readonly("eps", [](const eLayerNormImpl& n) { return n.options.eps(); })
      .def("forward", &eLayerNormImpl::forward, release)
      .def("normalise", &eLayerNormImpl::normalise, release);

  ModuleClass<eMultiheadAttentionImpl> mha(m, "eMultiheadAttention");
  common(mha)
      .def(py::init([](const Representation& rep, int64_t heads, double dropout, bool bias, const std::string& init) {
             return std::make_shared<eMultiheadAttentionImpl>(
                 eMultiheadAttentionOptions(rep, heads).dropout(dropout).bias(bias).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("num_heads"), py::arg("dropout") = 0.0, py::arg("bias") = true,
           py::arg("init_scheme") = "xavier_uniform")
      .def("forward",
           [](eMultiheadAttentionImpl& a, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
              const OptTensor& key_padding_mask, bool need_weights, const OptTensor& attn_mask, bool average, bool is_causal) {
             return a.forward(q, k, v, value(key_padding_mask), need_weights, value(attn_mask), average, is_causal);
           },
           py::arg("query"), py::arg("key"), py::arg("value"), py::arg("key_padding_mask") = py::none(),
           py::arg("need_weights") = true, py::arg("attn_mask") = py::none(), py::arg("average_attn_weights") = true,
           py::arg("is_causal") = false, release)
      .def_property_readonly("num_heads", [](const eMultiheadAttentionImpl& a) { return a.num_heads(); });

  // The positional attentions (rotary, ALiBi, additive) share the positional forward.
  auto positional = [&](auto& c) {
    using Impl = typename std::remove_reference_t<decltype(c)>::type;
    common(c)
        .def("forward",
             [](Impl& a, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const OptTensor& qpos,
                const OptTensor& kpos, const OptTensor& key_padding_mask, const OptTensor& attn_mask, bool is_causal) {
               return a.forward(q, k, v, value(qpos), value(kpos), value(key_padding_mask), value(attn_mask), is_causal);
             },
             py::arg("query"), py::arg("key"), py::arg("value"), py::arg("query_positions") = py::none(),
             py::arg("key_positions") = py::none(), py::arg("key_padding_mask") = py::none(),
             py::arg("attn_mask") = py::none(), py::arg("is_causal") = false, release)
        .def_property_readonly("num_heads", [](const Impl& a) { return a.num_heads(); });
  };
  ModuleClass<RotaryAttentionImpl> rotary(m, "RotaryAttention");
  rotary.def(py::init([](const Representation& rep, int64_t heads, double dropout, bool bias, const std::string& init, double base) {
               return std::make_shared<RotaryAttentionImpl>(
                   RotaryAttentionOptions(rep, heads).dropout(dropout).bias(bias).init_scheme(init).base(base));
             }),
             py::arg("in_rep"), py::arg("num_heads"), py::arg("dropout") = 0.0, py::arg("bias") = true,
             py::arg("init_scheme") = "xavier_uniform", py::arg("base") = 10000.0);
  positional(rotary);
  ModuleClass<ALiBiAttentionImpl> alibi(m, "ALiBiAttention");
  alibi.def(py::init([](const Representation& rep, int64_t heads, double dropout, bool bias, const std::string& init, bool learnable) {
              return std::make_shared<ALiBiAttentionImpl>(
                  ALiBiAttentionOptions(rep, heads).dropout(dropout).bias(bias).init_scheme(init).learnable_slopes(learnable));
            }),
            py::arg("in_rep"), py::arg("num_heads"), py::arg("dropout") = 0.0, py::arg("bias") = true,
            py::arg("init_scheme") = "xavier_uniform", py::arg("learnable_slopes") = false);
  positional(alibi);
  ModuleClass<eAdditivePosMultiheadAttentionImpl> additive_pos(m, "eAdditivePosMultiheadAttention");
  additive_pos
      .def(py::init([](const Representation& rep, int64_t heads, int64_t max_len, double dropout, bool bias, const std::string& init) {
             return std::make_shared<eAdditivePosMultiheadAttentionImpl>(
                 eAdditivePosMultiheadAttentionOptions(rep, heads, max_len).dropout(dropout).bias(bias).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("num_heads"), py::arg("max_len"), py::arg("dropout") = 0.0, py::arg("bias") = true,
           py::arg("init_scheme") = "xavier_normal")
      .def_property_readonly("max_len", [](const eAdditivePosMultiheadAttentionImpl& a) { return a.options.max_len(); });
  positional(additive_pos);
  ModuleClass<eAdditiveRelMultiheadAttentionImpl> additive_rel(m, "eAdditiveRelMultiheadAttention");
  additive_rel
      .def(py::init([](const Representation& rep, int64_t heads, int64_t max_distance, double dropout, bool bias,
                       const std::string& init) {
             return std::make_shared<eAdditiveRelMultiheadAttentionImpl>(
                 eAdditiveRelMultiheadAttentionOptions(rep, heads, max_distance).dropout(dropout).bias(bias).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("num_heads"), py::arg("max_distance"), py::arg("dropout") = 0.0, py::arg("bias") = true,
           py::arg("init_scheme") = "xavier_normal")
      .def_property_readonly("max_distance",
                             [](const eAdditiveRelMultiheadAttentionImpl& a) { return a.options.max_distance(); });
  positional(additive_rel);

  ModuleClass<eTransformerEncoderLayerImpl> encoder_layer(m, "eTransformerEncoderLayer");
  common(encoder_layer)
      .def(py::init([](const Representation& rep, const ModulePtr& self_attn, int64_t dim_feedforward, double dropout,
                       const std::string& activation, double eps, bool norm_first, const std::string& norm_module, bool bias,
                       const std::string& init) {
             return std::make_shared<eTransformerEncoderLayerImpl>(
                 eTransformerEncoderLayerOptions(rep, attention(self_attn, "self_attn"))
                     .dim_feedforward(dim_feedforward)
                     .dropout(dropout)
                     .activation(Activation::from_name(activation))
                     .layer_norm_eps(eps)
                     .norm_first(norm_first)
                     .norm_module(norm_module)
                     .bias(bias)
                     .init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("self_attn"), py::arg("dim_feedforward"), py::arg("dropout"), py::arg("activation"),
           py::arg("layer_norm_eps"), py::arg("norm_first"), py::arg("norm_module"), py::arg("bias"), py::arg("init_scheme"))
      .def("forward",
           [](eTransformerEncoderLayerImpl& l, const torch::Tensor& src, const OptTensor& mask, const OptTensor& kpm,
              bool is_causal, const OptTensor& pos, const OptTensor& pos_mask) {
             return l.forward(src, value(mask), value(kpm), is_causal, value(pos), value(pos_mask));
           },
           py::arg("src"), py::arg("src_mask") = py::none(), py::arg("src_key_padding_mask") = py::none(),
           py::arg("is_causal") = false, py::arg("src_positions") = py::none(), py::arg("src_position_mask") = py::none(),
           release)
      .def("check_equivariance",
           [](eTransformerEncoderLayerImpl& l, int64_t batch, int64_t seq, int samples, double atol, double rtol) {
             const auto r = l.check_equivariance(batch, seq, samples, atol, rtol);
             return std::map<std::string, double>{{"attention", r.attention}, {"feedforward", r.feedforward},
                                                  {"layer", r.layer}, {"worst_element", r.worst_element}};
           },
           py::arg("batch_size") = 4, py::arg("seq_len") = 5, py::arg("samples") = 20, py::arg("atol") = 1e-4,
           py::arg("rtol") = 1e-4, release)
      .def_property_readonly("hidden_size", [](const eTransformerEncoderLayerImpl& l) { return l.feedforward->hidden_size(); });

  ModuleClass<eTransformerEncoderImpl> encoder(m, "eTransformerEncoder");
  common(encoder)
      .def(py::init([](const std::shared_ptr<eTransformerEncoderLayerImpl>& layer, int64_t n, const ModulePtr& final_norm) {
             return std::make_shared<eTransformerEncoderImpl>(
                 eTransformerEncoderOptions(eTransformerEncoderLayer(layer), n).norm(norm(final_norm)));
           }),
           py::arg("encoder_layer"), py::arg("num_layers"), py::arg("norm") = py::none())
      .def("forward",
           [](eTransformerEncoderImpl& e, const torch::Tensor& src, const OptTensor& mask, const OptTensor& kpm,
              bool is_causal, const OptTensor& pos, const OptTensor& pos_mask) {
             return e.forward(src, value(mask), value(kpm), is_causal, value(pos), value(pos_mask));
           },
           py::arg("src"), py::arg("mask") = py::none(), py::arg("src_key_padding_mask") = py::none(),
           py::arg("is_causal") = false, py::arg("src_positions") = py::none(), py::arg("src_position_mask") = py::none(),
           release);

  ModuleClass<eTransformerDecoderLayerImpl> decoder_layer(m, "eTransformerDecoderLayer");
  common(decoder_layer)
      .def(py::init([](const Representation& rep, const ModulePtr& self_attn, const ModulePtr& cross_attn,
                       int64_t dim_feedforward, double dropout, const std::string& activation, double eps, bool norm_first,
                       const std::string& norm_module, bool bias, const std::string& init) {
             return std::make_shared<eTransformerDecoderLayerImpl>(
                 eTransformerDecoderLayerOptions(rep, attention(self_attn, "self_attn"), attention(cross_attn, "multihead_attn"))
                     .dim_feedforward(dim_feedforward)
                     .dropout(dropout)
                     .activation(Activation::from_name(activation))
                     .layer_norm_eps(eps)
                     .norm_first(norm_first)
                     .norm_module(norm_module)
                     .bias(bias)
                     .init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("self_attn"), py::arg("multihead_attn"), py::arg("dim_feedforward"), py::arg("dropout"),
           py::arg("activation"), py::arg("layer_norm_eps"), py::arg("norm_first"), py::arg("norm_module"), py::arg("bias"),
           py::arg("init_scheme"))
      .def("forward",
           [](eTransformerDecoderLayerImpl& l, const torch::Tensor& tgt, const torch::Tensor& memory, const OptTensor& tgt_mask,
              const OptTensor& memory_mask, const OptTensor& tgt_kpm, const OptTensor& memory_kpm, bool tgt_is_causal,
              bool memory_is_causal, const OptTensor& tgt_pos, const OptTensor& memory_pos) {
             return l.forward(tgt, memory, value(tgt_mask), value(memory_mask), value(tgt_kpm), value(memory_kpm),
                              tgt_is_causal, memory_is_causal, value(tgt_pos), value(memory_pos));
           },
           py::arg("tgt"), py::arg("memory"), py::arg("tgt_mask") = py::none(), py::arg("memory_mask") = py::none(),
           py::arg("tgt_key_padding_mask") = py::none(), py::arg("memory_key_padding_mask") = py::none(),
           py::arg("tgt_is_causal") = false, py::arg("memory_is_causal") = false, py::arg("tgt_positions") = py::none(),
           py::arg("memory_positions") = py::none(), release);
  // The time-series modules: constructors and forwards, for the Python modules' checkpoints and parity tests.
  auto conv = [&](auto& c) {
    using Impl = typename std::remove_reference_t<decltype(c)>::type;
    common(c)
        .def(py::init([](const Representation& in, const Representation& out, int64_t k, int64_t stride, int64_t padding,
                         int64_t output_padding, int64_t dilation, int64_t groups, bool bias, const std::string& mode,
                         const std::string& init) {
               return std::make_shared<Impl>(eConv1dOptions(in, out, k).stride(stride).padding(padding)
                                                 .output_padding(output_padding).dilation(dilation).groups(groups)
                                                 .bias(bias).padding_mode(mode).init_scheme(init));
             }),
             py::arg("in_rep"), py::arg("out_rep"), py::arg("kernel_size") = 3, py::arg("stride") = 1, py::arg("padding") = 0,
             py::arg("output_padding") = 0, py::arg("dilation") = 1, py::arg("groups") = 1, py::arg("bias") = true,
             py::arg("padding_mode") = "zeros", py::arg("init_scheme") = "xavier_uniform")
        .def("forward", &Impl::forward, release)
        .def("weight", &Impl::weight, release)
        .def("bias", &Impl::bias, release);
  };
  ModuleClass<eConv1dImpl> conv1d(m, "eConv1d");
  conv(conv1d);
  ModuleClass<eConvTranspose1dImpl> conv_t1d(m, "eConvTranspose1d");
  conv(conv_t1d);

  ModuleClass<eBatchNorm1dImpl> batch_norm(m, "eBatchNorm1d");
  common(batch_norm)
      .def(py::init([](const Representation& rep, double eps, std::optional<double> momentum, bool affine, bool track) {
             return std::make_shared<eBatchNorm1dImpl>(
                 eBatchNorm1dOptions(rep).eps(eps).momentum(momentum ? c10::optional<double>(*momentum) : c10::nullopt).affine(affine).track_running_stats(track));
           }),
           py::arg("in_rep"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1, py::arg("affine") = true,
           py::arg("track_running_stats") = true)
      .def("forward", &eBatchNorm1dImpl::forward, release);

  ModuleClass<IrrepSubspaceNormPoolingImpl> pooling(m, "IrrepSubspaceNormPooling");
  common(pooling)
      .def(py::init([](const Representation& rep) { return std::make_shared<IrrepSubspaceNormPoolingImpl>(rep); }),
           py::arg("in_rep"))
      .def("forward", &IrrepSubspaceNormPoolingImpl::forward, release);

  ModuleClass<Change2DisentangledBasisImpl> disentangled(m, "Change2DisentangledBasis");
  common(disentangled)
      .def(py::init([](const Representation& rep, bool learnable) {
             return std::make_shared<Change2DisentangledBasisImpl>(Change2DisentangledBasisOptions(rep).learnable(learnable));
           }),
           py::arg("in_rep"), py::arg("learnable") = false)
      .def("forward", &Change2DisentangledBasisImpl::forward, release)
      .def("change_of_basis", &Change2DisentangledBasisImpl::change_of_basis, release);

  // The C++ head's distribution as (mean, covariance_matrix), and log p(value | input), for agreement tests.
  ModuleClass<eMultivariateNormalImpl> normal(m, "eMultivariateNormal");
  common(normal)
      .def(py::init([](const Representation& out_rep, bool diagonal) {
             return std::make_shared<eMultivariateNormalImpl>(eMultivariateNormalOptions(out_rep).diagonal(diagonal));
           }),
           py::arg("out_rep"), py::arg("diagonal") = true)
      .def("forward", [](eMultivariateNormalImpl& h, const torch::Tensor& input) {
             const auto d = h.forward(input);
             return std::make_tuple(d.mean(), d.covariance_matrix());
           }, release)
      .def("log_prob", [](eMultivariateNormalImpl& h, const torch::Tensor& input, const torch::Tensor& value) {
             return h.forward(input).log_prob(value);
           }, release)
      .def("entropy", [](eMultivariateNormalImpl& h, const torch::Tensor& input) { return h.forward(input).entropy(); },
           release);

  ModuleClass<EMAStatsImpl> ema(m, "EMAStats");
  ema.def(py::init([](int64_t dim_x, std::optional<int64_t> dim_y, double momentum, double eps, bool center) {
           return std::make_shared<EMAStatsImpl>(
               EMAStatsOptions(dim_x).dim_y(dim_y).momentum(momentum).eps(eps).center_with_running_mean(center));
         }),
         py::arg("dim_x"), py::arg("dim_y") = py::none(), py::arg("momentum") = 0.1, py::arg("eps") = 1e-6,
         py::arg("center_with_running_mean") = true)
      .def("forward", &EMAStatsImpl::forward, release)
      .def("__repr__", &describe<EMAStatsImpl>);

  ModuleClass<eEMAStatsImpl> eema(m, "eEMAStats");
  common(eema)
      .def(py::init([](const Representation& x_rep, std::optional<Representation> y_rep, double momentum, double eps,
                       bool center) {
             return std::make_shared<eEMAStatsImpl>(
                 eEMAStatsOptions(x_rep).y_rep(y_rep).momentum(momentum).eps(eps).center_with_running_mean(center));
           }),
           py::arg("x_rep"), py::arg("y_rep") = py::none(), py::arg("momentum") = 0.1, py::arg("eps") = 1e-6,
           py::arg("center_with_running_mean") = true)
      .def("forward", &eEMAStatsImpl::forward, release)
      .def("cov_xx", &eEMAStatsImpl::cov_xx, release)
      .def("cov_yy", &eEMAStatsImpl::cov_yy, release)
      .def("cov_xy", &eEMAStatsImpl::cov_xy, release);
}

}  // namespace symm::python
