// The C++ models for Python: InvariantBias, eMLP, iMLP, MLP, the conditional regressors, the time-series encoders
// and the conditional U-Nets with their blocks, each with its options as keyword arguments and its forward. The
// Python modules (symm/nn/mlp.py, cond_regressor.py, time_cnn.py, unet.py) are held equal to these, and
// symm.save/load write and read the Python modules through them (symm/checkpoint.py).
#include <sstream>

#include "bindings.h"
#include "symm/nn/cond_regressor.h"
#include "symm/nn/mlp.h"
#include "symm/nn/time_cnn.h"
#include "symm/nn/unet.h"

namespace py = pybind11;
using namespace symm::nn;

namespace symm::python {
namespace {

template <typename Impl>
using ModuleClass = py::class_<Impl, torch::nn::Module, std::shared_ptr<Impl>>;

template <typename Impl>
std::string describe(const Impl& m) {
  std::ostringstream s;
  m.pretty_print(s);
  return s.str();
}

using OptTensor = std::optional<torch::Tensor>;

torch::Tensor value(const OptTensor& t) { return t ? *t : torch::Tensor(); }

Activation activation(const std::string& name) {
  if (name == "mish") return Activation([](const torch::Tensor& x) { return torch::mish(x); }, "mish");
  return Activation::from_name(name);
}

template <typename Impl>
ModuleClass<Impl>& plain(ModuleClass<Impl>& c) {
  return c.def("__repr__", &describe<Impl>);
}

template <typename Impl>
ModuleClass<Impl>& equivariant(ModuleClass<Impl>& c) {
  return c.def_property_readonly("in_rep", [](const Impl& m) { return m.in_rep(); })
      .def_property_readonly("out_rep", [](const Impl& m) { return m.out_rep(); })
      .def("__repr__", &describe<Impl>)
      .def("reset_parameters", [](Impl& m) { m.reset_parameters(); });
}

}  // namespace

void bind_models(py::module_& m) {
  const auto release = py::call_guard<py::gil_scoped_release>();

  m.def("is_our_decomposition", &is_our_decomposition, py::arg("rep"),
        "Whether rep is copies of Representation.regular in our irrep decomposition (symm/nn/hidden_rep.h).");

  ModuleClass<InvariantBiasImpl> bias(m, "InvariantBias");
  equivariant(bias)
      .def(py::init([](const Representation& rep) { return std::make_shared<InvariantBiasImpl>(InvariantBiasOptions(rep)); }),
           py::arg("in_rep"))
      .def("forward", &InvariantBiasImpl::forward, release);

  ModuleClass<eMLPImpl> emlp(m, "eMLP");
  equivariant(emlp)
      .def(py::init([](const Representation& in, const Representation& out, std::vector<int64_t> hidden, const std::string& act,
                       double dropout, bool bias, const std::string& init, std::optional<Representation> hidden_rep) {
             return std::make_shared<eMLPImpl>(eMLPOptions(in, out, std::move(hidden)).activation(activation(act)).dropout(dropout)
                                                   .bias(bias).init_scheme(init).hidden_rep(std::move(hidden_rep)));
           }),
           py::arg("in_rep"), py::arg("out_rep"), py::arg("hidden_units"), py::arg("activation") = "relu",
           py::arg("dropout") = 0.0, py::arg("bias") = true, py::arg("init_scheme") = "xavier_normal",
           py::arg("hidden_rep") = py::none())
      .def("forward", &eMLPImpl::forward, release)
      .def_property_readonly("hidden_rep", &eMLPImpl::hidden_rep);

  ModuleClass<iMLPImpl> imlp(m, "iMLP");
  equivariant(imlp)
      .def(py::init([](const Representation& in, int64_t out_dim, std::vector<int64_t> hidden, const std::string& act,
                       double dropout, bool bias, const std::string& init, std::optional<Representation> hidden_rep) {
             return std::make_shared<iMLPImpl>(iMLPOptions(in, out_dim, std::move(hidden)).activation(activation(act))
                                                   .dropout(dropout).bias(bias).init_scheme(init).hidden_rep(std::move(hidden_rep)));
           }),
           py::arg("in_rep"), py::arg("out_dim"), py::arg("hidden_units"), py::arg("activation") = "relu",
           py::arg("dropout") = 0.0, py::arg("bias") = true, py::arg("init_scheme") = "xavier_normal",
           py::arg("hidden_rep") = py::none())
      .def("forward", &iMLPImpl::forward, release)
      .def_property_readonly("hidden_rep", &iMLPImpl::hidden_rep)
      .def("invariants", &iMLPImpl::invariants, release);

  ModuleClass<eCondTransformerRegressorImpl> ecrt(m, "eCondTransformerRegressor");
  equivariant(ecrt)
      .def(py::init([](const Representation& in, const Representation& cond, const Representation& out, int64_t in_horizon,
                       int64_t cond_horizon, int64_t num_layers, int64_t heads, int64_t dim, double p_drop_emb, double p_drop_attn,
                       bool causal, int64_t num_cond_layers, const std::string& norm_module, const std::string& init) {
             return std::make_shared<eCondTransformerRegressorImpl>(
                 eCondTransformerRegressorOptions(in, cond, out, in_horizon, cond_horizon, num_layers, heads, dim)
                     .p_drop_emb(p_drop_emb)
                     .p_drop_attn(p_drop_attn)
                     .causal_attn(causal)
                     .num_cond_layers(num_cond_layers)
                     .norm_module(norm_module)
                     .init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("cond_rep"), py::arg("out_rep"), py::arg("in_horizon"), py::arg("cond_horizon"),
           py::arg("num_layers"), py::arg("num_attention_heads"), py::arg("embedding_dim"), py::arg("p_drop_emb") = 0.1,
           py::arg("p_drop_attn") = 0.1, py::arg("causal_attn") = false, py::arg("num_cond_layers") = 0,
           py::arg("norm_module") = "rmsnorm", py::arg("init_scheme") = "xavier_uniform")
      .def("forward",
           [](eCondTransformerRegressorImpl& r, const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z) {
             return r.forward(X, k, Z);
           },
           py::arg("X"), py::arg("opt_step"), py::arg("Z"), release)
      .def("check_equivariance",
           [](eCondTransformerRegressorImpl& r, int64_t batch, int64_t in_len, int64_t cond_len, int samples, double atol,
              double rtol) {
             const auto e = r.check_equivariance(batch, in_len, cond_len, samples, atol, rtol);
             return std::map<std::string, double>{{"max_relative", e.max_relative}, {"max_absolute", e.max_absolute},
                                                  {"worst_element", e.worst_element}};
           },
           py::arg("batch_size") = 4, py::arg("in_len") = 0, py::arg("cond_len") = 0, py::arg("samples") = 64,
           py::arg("atol") = 1e-4, py::arg("rtol") = 1e-4, release);

  ModuleClass<CondTransformerRegressorImpl> crt(m, "CondTransformerRegressor");
  crt.def(py::init([](int64_t in_dim, int64_t cond_dim, int64_t out_dim, int64_t in_horizon, int64_t cond_horizon, int64_t num_layers,
                      int64_t heads, int64_t dim, double p_drop_emb, double p_drop_attn, bool causal, int64_t num_cond_layers,
                      const std::string& norm_module) {
            return std::make_shared<CondTransformerRegressorImpl>(
                CondTransformerRegressorOptions(in_dim, cond_dim, out_dim, in_horizon, cond_horizon, num_layers, heads, dim)
                    .p_drop_emb(p_drop_emb)
                    .p_drop_attn(p_drop_attn)
                    .causal_attn(causal)
                    .num_cond_layers(num_cond_layers)
                    .norm_module(norm_module));
          }),
          py::arg("in_dim"), py::arg("cond_dim"), py::arg("out_dim"), py::arg("in_horizon"), py::arg("cond_horizon"),
          py::arg("num_layers"), py::arg("num_attention_heads"), py::arg("embedding_dim"), py::arg("p_drop_emb") = 0.1,
          py::arg("p_drop_attn") = 0.1, py::arg("causal_attn") = false, py::arg("num_cond_layers") = 0,
          py::arg("norm_module") = "rmsnorm")
      .def("forward",
           [](CondTransformerRegressorImpl& r, const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z) {
             return r.forward(X, k, Z);
           },
           py::arg("X"), py::arg("opt_step"), py::arg("Z"), release)
      .def("__repr__", &describe<CondTransformerRegressorImpl>)
      .def("reset_parameters", [](CondTransformerRegressorImpl& r) { r.reset_parameters(); });

  ModuleClass<MLPImpl> mlp(m, "MLP");
  plain(mlp)
      .def(py::init([](int64_t in_dim, int64_t out_dim, std::vector<int64_t> hidden, const std::string& act, bool batch_norm,
                       bool bias) {
             return std::make_shared<MLPImpl>(
                 MLPOptions(in_dim, out_dim, std::move(hidden)).activation(activation(act)).batch_norm(batch_norm).bias(bias));
           }),
           py::arg("in_dim"), py::arg("out_dim"), py::arg("hidden_units"), py::arg("activation") = "relu",
           py::arg("batch_norm") = false, py::arg("bias") = true)
      .def("forward", &MLPImpl::forward, release)
      .def("reset_parameters", [](MLPImpl& r) { r.reset_parameters(); });

  ModuleClass<eTimeCNNEncoderImpl> ecnn(m, "eTimeCNNEncoder");
  equivariant(ecnn)
      .def(py::init([](const Representation& in, const Representation& out, std::vector<int64_t> hidden, int64_t horizon,
                       const std::string& act, bool batch_norm, bool bias, std::vector<int64_t> mlp_hidden,
                       const std::string& downsample, bool append_last_frame, const std::string& init,
                       std::optional<Representation> hidden_rep) {
             return std::make_shared<eTimeCNNEncoderImpl>(
                 eTimeCNNEncoderOptions(in, out, std::move(hidden), horizon).activation(activation(act)).batch_norm(batch_norm)
                     .bias(bias).mlp_hidden(std::move(mlp_hidden)).downsample(downsample)
                     .append_last_frame(append_last_frame).init_scheme(init).hidden_rep(std::move(hidden_rep)));
           }),
           py::arg("in_rep"), py::arg("out_rep"), py::arg("hidden_channels"), py::arg("time_horizon"),
           py::arg("activation") = "relu", py::arg("batch_norm") = false, py::arg("bias") = true,
           py::arg("mlp_hidden") = std::vector<int64_t>{128}, py::arg("downsample") = "stride",
           py::arg("append_last_frame") = false, py::arg("init_scheme") = "xavier_uniform",
           py::arg("hidden_rep") = py::none())
      .def("forward", &eTimeCNNEncoderImpl::forward, release)
      .def_property_readonly("hidden_rep", &eTimeCNNEncoderImpl::hidden_rep)
      .def_property_readonly("time_horizon_out", &eTimeCNNEncoderImpl::time_horizon_out)
      .def_property_readonly("head_in_rep", &eTimeCNNEncoderImpl::head_in_rep);

  ModuleClass<TimeCNNEncoderImpl> cnn(m, "TimeCNNEncoder");
  plain(cnn)
      .def(py::init([](int64_t in_dim, int64_t out_dim, std::vector<int64_t> hidden, int64_t horizon, const std::string& act,
                       bool normalize, bool bias, std::vector<int64_t> mlp_hidden, const std::string& downsample,
                       bool append_last_frame) {
             return std::make_shared<TimeCNNEncoderImpl>(
                 TimeCNNEncoderOptions(in_dim, out_dim, std::move(hidden), horizon).activation(activation(act))
                     .normalize(normalize).bias(bias).mlp_hidden(std::move(mlp_hidden)).downsample(downsample)
                     .append_last_frame(append_last_frame));
           }),
           py::arg("in_dim"), py::arg("out_dim"), py::arg("hidden_channels"), py::arg("horizon"),
           py::arg("activation") = "relu", py::arg("normalize") = false, py::arg("bias") = true,
           py::arg("mlp_hidden") = std::vector<int64_t>{128}, py::arg("downsample") = "stride",
           py::arg("append_last_frame") = false)
      .def("forward", &TimeCNNEncoderImpl::forward, release)
      .def_property_readonly("horizon_out", &TimeCNNEncoderImpl::horizon_out)
      .def("reset_parameters", [](TimeCNNEncoderImpl& r) { r.reset_parameters(); });

  ModuleClass<eConditionalResidualBlock1DImpl> eblock(m, "eConditionalResidualBlock1D");
  equivariant(eblock)
      .def(py::init([](const Representation& in, const Representation& out, const Representation& cond, int64_t k,
                       bool predict_scale, const std::string& act, bool normalize, const std::string& init) {
             return std::make_shared<eConditionalResidualBlock1DImpl>(
                 eConditionalResidualBlock1DOptions(in, out, cond).kernel_size(k).cond_predict_scale(predict_scale)
                     .activation(activation(act)).normalize(normalize).init_scheme(init));
           }),
           py::arg("in_rep"), py::arg("out_rep"), py::arg("cond_rep"), py::arg("kernel_size") = 3,
           py::arg("cond_predict_scale") = true, py::arg("activation") = "relu", py::arg("normalize") = true,
           py::arg("init_scheme") = "xavier_uniform")
      .def("forward", &eConditionalResidualBlock1DImpl::forward, py::arg("x"), py::arg("cond"), release);

  ModuleClass<eConditionalUnet1DImpl> eunet(m, "eConditionalUnet1D");
  equivariant(eunet)
      .def(py::init([](const Representation& in, std::optional<Representation> local, std::optional<Representation> global,
                       int64_t step_dim, std::vector<int64_t> down_dims, int64_t k, bool predict_scale, const std::string& act,
                       bool normalize, const std::string& downsample, const std::string& init,
                       std::optional<Representation> hidden_rep) {
             return std::make_shared<eConditionalUnet1DImpl>(
                 eConditionalUnet1DOptions(in).local_cond_rep(std::move(local)).global_cond_rep(std::move(global))
                     .diffusion_step_embed_dim(step_dim).down_dims(std::move(down_dims)).kernel_size(k)
                     .cond_predict_scale(predict_scale).activation(activation(act)).normalize(normalize)
                     .downsample(downsample).init_scheme(init).hidden_rep(std::move(hidden_rep)));
           }),
           py::arg("in_rep"), py::arg("local_cond_rep") = py::none(), py::arg("global_cond_rep") = py::none(),
           py::arg("diffusion_step_embed_dim") = 256, py::arg("down_dims") = std::vector<int64_t>{256, 512, 1024},
           py::arg("kernel_size") = 3, py::arg("cond_predict_scale") = true, py::arg("activation") = "relu",
           py::arg("normalize") = true, py::arg("downsample") = "stride", py::arg("init_scheme") = "xavier_uniform",
           py::arg("hidden_rep") = py::none())
      .def("forward",
           [](eConditionalUnet1DImpl& u, const torch::Tensor& sample, const torch::Tensor& timestep, const OptTensor& local,
              const OptTensor& film) { return u.forward(sample, timestep, value(local), value(film)); },
           py::arg("sample"), py::arg("timestep"), py::arg("local_cond") = py::none(), py::arg("film_cond") = py::none(),
           release)
      .def_property_readonly("cond_rep", &eConditionalUnet1DImpl::cond_rep)
      .def_property_readonly("hidden_rep", &eConditionalUnet1DImpl::hidden_rep);

  ModuleClass<Conv1dBlockImpl> conv_block(m, "Conv1dBlock");
  conv_block
      .def(py::init([](int64_t in, int64_t out, int64_t k, int64_t groups) { return std::make_shared<Conv1dBlockImpl>(in, out, k, groups); }),
           py::arg("inp_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("n_groups") = 8)
      .def("forward", &Conv1dBlockImpl::forward, release);

  ModuleClass<Downsample1dImpl> down(m, "Downsample1d");
  down.def(py::init([](int64_t dim) { return std::make_shared<Downsample1dImpl>(dim); }), py::arg("dim"))
      .def("forward", &Downsample1dImpl::forward, release);

  ModuleClass<Upsample1dImpl> up(m, "Upsample1d");
  up.def(py::init([](int64_t dim) { return std::make_shared<Upsample1dImpl>(dim); }), py::arg("dim"))
      .def("forward", &Upsample1dImpl::forward, release);

  ModuleClass<ConditionalResidualBlock1DImpl> block(m, "ConditionalResidualBlock1D");
  plain(block)
      .def(py::init([](int64_t in, int64_t out, int64_t cond, int64_t k, int64_t groups, bool predict_scale) {
             return std::make_shared<ConditionalResidualBlock1DImpl>(
                 ConditionalResidualBlock1DOptions(in, out, cond).kernel_size(k).n_groups(groups).cond_predict_scale(predict_scale));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("cond_dim"), py::arg("kernel_size") = 3,
           py::arg("n_groups") = 8, py::arg("cond_predict_scale") = false)
      .def("forward", &ConditionalResidualBlock1DImpl::forward, py::arg("x"), py::arg("cond"), release);

  ModuleClass<ConditionalUnet1DImpl> unet(m, "ConditionalUnet1D");
  plain(unet)
      .def(py::init([](int64_t input_dim, std::optional<int64_t> local, std::optional<int64_t> global, int64_t step_dim,
                       std::vector<int64_t> down_dims, int64_t k, int64_t groups, bool predict_scale) {
             return std::make_shared<ConditionalUnet1DImpl>(
                 ConditionalUnet1DOptions(input_dim).local_cond_dim(local).global_cond_dim(global)
                     .diffusion_step_embed_dim(step_dim).down_dims(std::move(down_dims)).kernel_size(k).n_groups(groups)
                     .cond_predict_scale(predict_scale));
           }),
           py::arg("input_dim"), py::arg("local_cond_dim") = py::none(), py::arg("global_cond_dim") = py::none(),
           py::arg("diffusion_step_embed_dim") = 16, py::arg("down_dims") = std::vector<int64_t>{32, 64},
           py::arg("kernel_size") = 3, py::arg("n_groups") = 1, py::arg("cond_predict_scale") = true)
      .def("forward",
           [](ConditionalUnet1DImpl& u, const torch::Tensor& sample, const torch::Tensor& timestep, const OptTensor& local,
              const OptTensor& film) { return u.forward(sample, timestep, value(local), value(film)); },
           py::arg("sample"), py::arg("timestep"), py::arg("local_cond") = py::none(), py::arg("film_cond") = py::none(),
           release);
}

}  // namespace symm::python
